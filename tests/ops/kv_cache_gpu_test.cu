// PLACEHOLDER: kv_cache's GPU sweep lands here.
