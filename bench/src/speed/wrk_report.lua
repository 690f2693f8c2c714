-- bench http: wrk's totals and latency percentiles (p99.9 included, which wrk's own text lacks)
-- as one JSON line, read by bench/src/speed/wrk.rs.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
