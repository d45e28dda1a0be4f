"""quickq's benchmark suite (issue 6): ``python -m bench --help`` or ``make bench``."""
