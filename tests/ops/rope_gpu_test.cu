// PLACEHOLDER: rope's GPU sweep lands here.
