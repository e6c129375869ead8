"""The tenant portal (contract.md §7.3): a browser UI for one tenant, served by the API process.

`static/` holds the whole UI as hand-written ES modules and CSS: nothing is built or fetched at
install or run time. `settings.py` turns PORTAL_* settings into what the page may see (never a
secret); `serving.py` serves the page, that configuration, and the assets.
"""
