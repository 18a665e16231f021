"""The gate defers the modules great_expectations imports for expectations it never runs: they must stay
unloaded through GX's import, and work as themselves the moment anything uses them.

Each case runs in a fresh interpreter: whether a module is loaded is process-wide state."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> None:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_great_expectations_imports_without_loading_the_deferred_modules():
    run("""
        import sys
        from plus_analytics.gate.suites import DEFERRED_IMPORTS, defer_unused_gx_imports
        assert defer_unused_gx_imports() == list(DEFERRED_IMPORTS)
        import great_expectations as gx
        from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
        assert "scipy.stats._stats_py" not in sys.modules and "altair.vegalite" not in sys.modules
        assert gx.ExpectationSuite(name="s").name == "s"
        assert defer_unused_gx_imports() == []  # GX imported: nothing more to defer
    """)


def test_a_deferred_module_works_as_itself_on_first_use():
    run("""
        import sys, types
        from plus_analytics.gate.suites import defer_unused_gx_imports
        defer_unused_gx_imports()
        from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
        stand_in = kl.stats
        assert type(stand_in).__name__ == "_Deferred"
        assert kl.stats.entropy([0.5, 0.5], [0.5, 0.5]) == 0.0  # first use: scipy.stats is imported
        real = sys.modules["scipy.stats"]
        assert type(real) is types.ModuleType and real.entropy is stand_in.entropy
        import scipy.stats
        import scipy.stats.distributions  # a submodule of the real package
        assert scipy.stats is real and scipy.stats.distributions.norm.cdf(0) == 0.5
        assert kl.alt.Chart.__module__.startswith("altair")
        assert type(sys.modules["altair"]) is types.ModuleType
    """)


def test_a_module_already_imported_is_left_alone():
    run("""
        import sys
        import scipy.stats
        from plus_analytics.gate.suites import defer_unused_gx_imports
        assert defer_unused_gx_imports() == ["altair"]
        assert sys.modules["scipy.stats"] is scipy.stats
    """)
