// The attention GPU tests are written on main.
