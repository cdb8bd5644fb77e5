-- The legitimate client of the abuse scenario: POSTs one JSON body per request, in order, from
-- a file of one body per line, as the address in WRK_FORWARDED_FOR (behind a trusted proxy),
-- and writes the X-Request-ID of every answer it received to WRK_IDS_FILE. Usage:
--   wrk -s legit.lua URL -- BODIES_FILE
local threads = {}
local counter = 0
local bodies = {}
local stride, offset = 1, 0
ids = {}  -- global: done() reads each thread's through thread:get

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
  wrk.headers["X-Forwarded-For"] = os.getenv("WRK_FORWARDED_FOR")
end

function request()
  local index = (counter * stride + offset) % #bodies + 1
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[index])
end

function response(status, headers, body)
  if status == 200 then
    ids[#ids + 1] = headers["X-Request-ID"]
  end
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_IDS_FILE"), "w")
  for _, thread in ipairs(threads) do
    for _, id in ipairs(thread:get("ids")) do
      out:write(id, "\n")
    end
  end
  out:close()
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
