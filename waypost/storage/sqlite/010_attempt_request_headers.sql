-- What an attempt sent besides the body: the request's headers (webhook, Hookdeck, Cloudflare),
-- or the message's attributes/properties (brokers, clouds), as a JSON object with credentials
-- masked and size bounded (waypost/core/sent_headers.py). NULL: nothing of the kind was sent,
-- or the attempt was recorded before this. Not in any index: only an attempt's page reads it.
ALTER TABLE attempts ADD COLUMN request_headers TEXT;
