"""muxsim.sim (under construction)."""
