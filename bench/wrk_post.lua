-- wrk: POST a publish-sized JSON body, as the server's deliveries do, for the loopback limit.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"n":1,"sent":0,"text":"' .. string.rep("x", 200) .. '"}'
