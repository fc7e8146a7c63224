"""What the notebooks use besides the core: the setup call, run presets, figures and offline stand-ins."""
