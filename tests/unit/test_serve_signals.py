"""``make airflow`` stops every component on Ctrl-C and on SIGTERM alike (kill, systemd, a container's stop),
even where SIGINT was inherited as ignored; the make airflow test delivers Ctrl-C to the real thing."""

import os
import signal

import pytest

from plus_analytics.scheduler import _stop_on_signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_both_signals_interrupt_the_serve_loop(sig):
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a job a script started in the background inherits it
        _stop_on_signals()
        with pytest.raises(KeyboardInterrupt, match=signal.Signals(sig).name):
            os.kill(os.getpid(), sig)
            signal.sigtimedwait([], 0.5)  # let the handler run
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
