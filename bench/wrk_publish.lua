-- wrk: publish a small event to tenant t1 (bench/asgi_servers.py).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.body = '{"tenant_id":"t1","topic":"order.created","data":{"n":1,"text":"' .. string.rep("x", 200) .. '"}}'
