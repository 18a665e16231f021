"""The project's one AirflowPlugin: the DPO's Privacy page (a FastAPI app in the API server, linked from
the UI's navigation). Registered through the ``airflow.plugins`` entry point (pyproject.toml), so
installing the package is all a deployment does to load it: no file in its plugins folder."""

from airflow.plugins_manager import AirflowPlugin

from plus_analytics.console.app import app as privacy_app


class PlusAnalyticsPlugin(AirflowPlugin):
    name = "plus_analytics"
    fastapi_apps = [{"app": privacy_app, "url_prefix": "/plus-privacy", "name": "Plus Privacy"}]
    external_views = [{"name": "Privacy", "href": "plus-privacy/", "destination": "nav", "category": "browse",
                       "url_route": "privacy"}]
