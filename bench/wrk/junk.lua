-- The attackers of the abuse scenario: each request is one of the junk kinds below, in turn,
-- from one of 4 addresses (behind a trusted proxy that appends the sender to X-Forwarded-For,
-- after whatever the client wrote there). WRK_ATTACKER_KEY is a valid key of another tenant.
--   wrk -s junk.lua URL
local counter = 0
local offset = 0
local key
local deep = string.rep("[", 20000) .. string.rep("]", 20000)
local oversized = '{"text": "' .. string.rep("x", 1100000) .. '"}'
local hostile_model = '{"text": "hostile", "model": "' .. string.rep("m", 160) .. '"}'
local threads = {}

function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

function init(args)
  key = os.getenv("WRK_ATTACKER_KEY")
end

local function guessed_key()
  local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
  local prefix = ""
  for _ = 1, 8 do
    local i = math.random(#chars)
    prefix = prefix .. chars:sub(i, i)
  end
  return "gw_" .. prefix .. "." .. string.rep("A", 43)
end

function request()
  counter = counter + 1
  local address = "198.51.100." .. ((counter + offset) % 4 + 1)
  local headers = {["Content-Type"] = "application/json", ["X-Forwarded-For"] = "x, <script>, " .. address}
  local kind = counter % 7
  if kind == 0 then
    headers["X-API-Key"] = guessed_key()
    return wrk.format("POST", "/api/v1/predict", headers, '{"text": "guess"}')
  elseif kind == 1 then
    headers["X-API-Key"] = "nonsense"
    return wrk.format("POST", "/v1/chat/completions", headers, '{"messages": []}')
  elseif kind == 2 then
    headers["X-API-Key"] = key
    return wrk.format("POST", "/api/v1/predict", headers, hostile_model)
  elseif kind == 3 then
    headers["X-API-Key"] = key
    return wrk.format("POST", "/api/v1/predict", headers, deep)
  elseif kind == 4 then
    headers["X-API-Key"] = key
    return wrk.format("POST", "/api/v1/predict", headers, oversized)
  elseif kind == 5 then
    headers["X-API-Key"] = key
    return wrk.format("BREW", "/api/v1/predict", headers, "")
  else
    return wrk.format("POST", "/v1/chat/completions", headers, '{"model": "x", "messages": [{"role": "user"}]}')
  end
end

function done(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d}\n', summary.requests, summary.duration))
end
