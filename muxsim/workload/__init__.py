"""muxsim.workload (under construction)."""
