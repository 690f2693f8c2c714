//! Headless Chromium (Debian's `chromium`, installed by scripts/setup.sh), to look at the admin
//! pages as a user's browser does: the DOM it built, and a screenshot.

use std::path::Path;
use std::process::Command;

fn chromium(args: &[&str], url: &str) -> std::process::Output {
    Command::new("chromium")
        // As root (CI, containers) Chromium needs --no-sandbox; there is no GPU here.
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running chromium (scripts/setup.sh installs it): {e}"))
}

/// The DOM Chromium built from `url`, serialized.
pub fn dom(url: &str) -> String {
    let out = chromium(&["--dump-dom"], url);
    assert!(out.status.success(), "chromium --dump-dom {url}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `width`×`height` screenshot of `url` at `png`.
pub fn screenshot(url: &str, png: &Path, width: u32, height: u32) {
    let _ = std::fs::remove_file(png);
    let shot = format!("--screenshot={}", png.display());
    let size = format!("--window-size={width},{height}");
    let out = chromium(&[&shot, &size], url);
    assert!(out.status.success(), "chromium --screenshot {url}: {out:?}");
    let bytes = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(
        bytes > 5_000,
        "{} holds a picture: {bytes} bytes",
        png.display()
    );
}
