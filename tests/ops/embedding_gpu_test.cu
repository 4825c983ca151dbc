// PLACEHOLDER: embedding's GPU sweep lands here.
