// PLACEHOLDER: adamw's GPU sweep lands here.
