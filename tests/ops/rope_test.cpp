// PLACEHOLDER: rope's CPU-side tests land here.
