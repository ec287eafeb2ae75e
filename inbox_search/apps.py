from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "inbox_search"
    verbose_name = "Search"
