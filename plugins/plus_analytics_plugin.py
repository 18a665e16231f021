"""The project's one AirflowPlugin (the library itself is an installed package, kept out of the plugin
manager by plugins/.airflowignore)."""

from airflow.plugins_manager import AirflowPlugin


class PlusAnalyticsPlugin(AirflowPlugin):
    name = "plus_analytics"
