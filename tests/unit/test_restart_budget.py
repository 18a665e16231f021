"""How often ``make airflow`` starts an exited Airflow component again (pure; no Airflow)."""

from plus_analytics.scheduler import RestartBudget


def test_three_restarts_within_ten_minutes_then_none_until_the_oldest_leaves_the_window():
    b = RestartBudget(limit=3, window=600)
    assert [b.spend(t) for t in (0, 100, 200)] == [True, True, True]
    assert b.spend(599) is False  # a fourth exit within ten minutes of the first: stop
    assert b.spend(601) is True  # the exit at 0 is out of the window now
    assert b.spend(650) is False  # 100, 200, 601 are within it
    assert b.spend(1300) is True


def test_a_refused_restart_is_not_counted():
    b = RestartBudget(limit=1, window=10)
    assert b.spend(0) is True
    assert b.spend(5) is False
    assert b.spend(10.5) is True  # only the restart at 0 counted, and it has left the window
