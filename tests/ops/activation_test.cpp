// PLACEHOLDER: activation's CPU-side tests land here.
