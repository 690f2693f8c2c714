//! A config file's YAML into the binary's serde struct (`deny_unknown_fields` there makes a
//! misspelt key an error), with the error naming the key: `groups[0].upstream`.

use serde::de::DeserializeOwned;

/// Why the text is not a valid config: where (`key`, a path like `check.interval`; `.` for the
/// document itself) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub key: String,
    pub message: String,
}

/// Parses `text`; an empty file (or one of comments only) is `T::default()`.
pub fn parse<T: DeserializeOwned + Default>(text: &str) -> Result<T, YamlError> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(T::default());
    }
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| YamlError {
        key: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[allow(dead_code)]
        check: Option<Check>,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Check {
        #[allow(dead_code)]
        interval: Option<u32>,
    }

    #[test]
    fn the_error_names_the_key() {
        let e = parse::<File>("check:\n  interval: soon\n").unwrap_err();
        assert_eq!(e.key, "check.interval");
        let e = parse::<File>("check:\n  intervall: 1\n").unwrap_err();
        assert!(e.message.contains("intervall"), "{e:?}");
        assert!(parse::<File>("# nothing\n\n").is_ok());
    }
}
