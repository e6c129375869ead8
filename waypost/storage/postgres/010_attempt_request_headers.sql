-- What an attempt sent besides the body: the request's headers (webhook, Hookdeck, Cloudflare),
-- or the message's attributes/properties (brokers, clouds), as JSON text with credentials masked
-- and size bounded (waypost/core/sent_headers.py). NULL: nothing of the kind was sent, or the
-- attempt was recorded before this. A nullable column without a default rewrites nothing.
ALTER TABLE attempts ADD COLUMN request_headers TEXT;
