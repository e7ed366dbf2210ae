-- wrk: reserve 1 of a random product (spread) with unique ids per thread+counter.
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  token = os.getenv("TOKEN")
  products = tonumber(os.getenv("PRODUCTS") or "10000")
  hot = os.getenv("HOT")
  math.randomseed(os.time() + tid)
end
request = function()
  counter = counter + 1
  local p = hot and "HOT" or ("P" .. math.random(0, products - 1))
  local site = hot and "1" or tostring(math.random(1, 4))
  local body = '{"id":"w' .. tid .. '-' .. counter .. '-' .. os.time() .. '","organizationId":"org","productId":"' .. p ..
    '","dimensions":{"siteId":"' .. site .. '","locationId":"11"},"quantityDataSource":"iv","modifier":"softreservphysical","quantity":1}'
  return wrk.format("POST", "/api/environment/bench/onhand/reserve",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
local codes = {}
response = function(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
done = function(summary, latency, requests)
  io.write(string.format("p50=%.2fms p99=%.2fms p999=%.2fms max=%.2fms\n", latency:percentile(50)/1000, latency:percentile(99)/1000, latency:percentile(99.9)/1000, latency.max/1000))
end
