// PLACEHOLDER: adamw's CPU-side tests land here.
