# Loads stock: PRODUCTS products x 4 sites, on-hand N each, via onhand/bulk (512 per call).
import json, os, sys, urllib.request
base, token = sys.argv[1], sys.argv[2]
products, qty = int(os.environ.get("PRODUCTS", "10000")), int(os.environ.get("QTY", "1000000"))
items = []
def flush():
    global items
    if not items: return
    req = urllib.request.Request(base + "/api/environment/bench/onhand/bulk", data=json.dumps(items).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
    r = json.load(urllib.request.urlopen(req))
    assert len(r["success"]) == len(items), r
    items = []
hot = os.environ.get("HOT")
keys = [("HOT", "1")] if hot else [(f"P{p}", str(s)) for p in range(products) for s in range(1, 5)]
for i, (p, s) in enumerate(keys):
    items.append({"id": f"load-{p}-{s}", "organizationId": "org", "productId": p,
                  "dimensions": {"siteId": s, "locationId": "11"}, "quantities": {"iv": {"onhand": qty}}})
    if len(items) == 512: flush()
flush()
print("loaded", len(keys))
