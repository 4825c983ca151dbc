// PLACEHOLDER: activation's GPU sweep lands here.
