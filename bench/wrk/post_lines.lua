-- POSTs one JSON body per request, taken in order from a file of one body per line, so
-- that no two requests repeat (no cache hits). Usage:
--   wrk -s post_lines.lua URL -- BODIES_FILE
-- Headers: X-API-Key from the WRK_API_KEY environment variable.
local threads = {}
local counter = 0
local bodies = {}
local stride, offset = 1, 0

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  stride = tonumber(os.getenv("WRK_THREADS") or "1")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = os.getenv("WRK_API_KEY")
end

function request()
  local index = (counter * stride + offset) % #bodies + 1
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[index])
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
