-- POSTs one JSON body per request, taken in order from a file of one body per line, so
-- that no two requests repeat (no cache hits). Usage:
--   wrk -s post_lines.lua URL -- BODIES_FILE
-- Environment: WRK_API_KEY (the X-API-Key header); WRK_FORWARDED_FOR, when set, the client
-- address as a trusted proxy reports it (X-Forwarded-For); WRK_IDS_FILE, when set, the file
-- that receives the X-Request-ID of every 200 answer (the abuse scenario's check that each is
-- in the request log once).
local threads = {}
local counter = 0
local bodies = {}
local stride, offset = 1, 0
ids = {}  -- global: done() reads each thread's through thread:get

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

local function record_id(status, headers, body)
  if status == 200 then
    ids[#ids + 1] = headers["X-Request-ID"]
  end
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
  -- Only then: wrk reads every answer's headers for a script that defines response().
  if os.getenv("WRK_IDS_FILE") then
    response = record_id
  end
end

function request()
  local index = (counter * stride + offset) % #bodies + 1
  counter = counter + 1
  return wrk.format(nil, nil, nil, bodies[index])
end

function done(summary, latency, requests)
  local ids_file = os.getenv("WRK_IDS_FILE")
  if ids_file then
    local out = io.open(ids_file, "w")
    for _, thread in ipairs(threads) do
      for _, id in ipairs(thread:get("ids")) do
        out:write(id, "\n")
      end
    end
    out:close()
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
