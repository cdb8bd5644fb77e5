-- The chaos suite's load (tests/chaos.py): POSTs one JSON body per request, in order, from a
-- file of one body per line, and writes one line per answer to WRK_ANSWERS_FILE:
--   <status> <1 if it had Retry-After, else 0> <X-Request-ID>
-- Once the file WRK_STOP_FILE exists (looked for every 20 requests) it asks for /health instead,
-- which leaves no log row and is not recorded, so that the requests wrk abandons when it is
-- stopped (SIGINT) are not billable ones: every log row of the key then belongs to an answer
-- this file lists. Usage:
--   wrk -s chaos.lua URL -- BODIES_FILE
local threads = {}
local counter = 0
local bodies = {}
local stride, offset = 1, 0
local stop_file = nil
local stopped = false
answers = {}  -- global: done() reads each thread's through thread:get

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  stride = tonumber(os.getenv("WRK_THREADS") or "1")
  stop_file = os.getenv("WRK_STOP_FILE")
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = os.getenv("WRK_API_KEY")
end

function request()
  if not stopped and counter % 20 == 0 then
    local file = io.open(stop_file, "r")
    if file then
      file:close()
      stopped = true
    end
  end
  if stopped then
    return wrk.format("GET", "/health")
  end
  local index = (counter * stride + offset) % #bodies + 1
  counter = counter + 1
  return wrk.format("POST", nil, nil, bodies[index])
end

function response(status, headers, body)
  if string.find(body, '"healthy"', 1, true) then
    return
  end
  local retry = headers["Retry-After"] and 1 or 0
  answers[#answers + 1] = status .. " " .. retry .. " " .. (headers["X-Request-ID"] or "-")
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_ANSWERS_FILE"), "w")
  for _, thread in ipairs(threads) do
    for _, line in ipairs(thread:get("answers")) do
      out:write(line, "\n")
    end
  end
  out:close()
  local errors = summary.errors
  io.write(string.format('WRK_JSON {"requests": %d, "socket_errors": %d, "timeouts": %d}\n',
    summary.requests, errors.connect + errors.read + errors.write, errors.timeout))
end
