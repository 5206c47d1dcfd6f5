-- wrk: send 16 pipelined requests per round trip.
init = function(args)
   local r = {}
   for i = 1, 16 do
      r[i] = wrk.format(nil, "/1k.txt")
   end
   req = table.concat(r)
end

request = function()
   return req
end
