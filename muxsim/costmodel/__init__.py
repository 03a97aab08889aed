"""muxsim.costmodel (under construction)."""
