// PLACEHOLDER: embedding's CPU-side tests land here.
