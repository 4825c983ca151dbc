// PLACEHOLDER: kv_cache's CPU-side tests land here.
