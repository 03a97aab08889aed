"""muxsim.placement (under construction)."""
