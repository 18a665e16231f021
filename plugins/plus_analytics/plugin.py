"""The project's one AirflowPlugin: the DPO's Privacy page and the analysts' dashboards (FastAPI apps in the
API server, linked from the UI's navigation under Browse). Registered through the ``airflow.plugins`` entry point (pyproject.toml), so
installing the package is all a deployment does to load it: no file in its plugins folder."""

from airflow.plugins_manager import AirflowPlugin

from plus_analytics.console.app import app as privacy_app
from plus_analytics.console.dashboards import app as dashboards_app


class PlusAnalyticsPlugin(AirflowPlugin):
    name = "plus_analytics"
    fastapi_apps = [{"app": privacy_app, "url_prefix": "/plus-privacy", "name": "Plus Privacy"},
                    {"app": dashboards_app, "url_prefix": "/plus-dashboards", "name": "Plus Dashboards"}]
    external_views = [{"name": "Privacy", "href": "plus-privacy/", "destination": "nav", "category": "browse",
                       "url_route": "privacy"},
                      {"name": "Dashboards", "href": "plus-dashboards/", "destination": "nav", "category": "browse",
                       "url_route": "dashboards"}]
