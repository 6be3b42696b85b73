"""Russian dates where Django's own formats use the nominative: "27 ноября", not "27 Ноябрь"
(the admin's date drill-down)."""

MONTH_DAY_FORMAT = "j E"
