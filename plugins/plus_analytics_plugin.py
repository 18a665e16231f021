"""The project's one AirflowPlugin: registers the listeners (the library itself is an installed package,
kept out of the plugin manager by plugins/.airflowignore)."""

from airflow.plugins_manager import AirflowPlugin

from plus_analytics import listeners


class PlusAnalyticsPlugin(AirflowPlugin):
    name = "plus_analytics"
    listeners = [listeners]
