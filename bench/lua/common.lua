-- Shared by every scenario: per-thread records from a data file, and a JSON summary.
-- Data file: one record per line, fields separated by tabs (token, id, version, ...).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

records = {}

function load_records(path, nthreads)
  local all = {}
  for line in io.lines(path) do
    local fields = {}
    for field in string.gmatch(line, "[^\t]+") do table.insert(fields, field) end
    table.insert(all, fields)
  end
  -- Each thread owns a disjoint slice, so no two threads race on one record.
  for index, fields in ipairs(all) do
    if (index - 1) % nthreads == tid then table.insert(records, fields) end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"non_2xx\": %d, " ..
    "\"socket_errors\": %d, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, " ..
    "\"max_ms\": %.3f}\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
