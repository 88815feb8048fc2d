package bus

// Version is Corral's version, announced by every node and printed by corralctl.
const Version = "0.1.0"
