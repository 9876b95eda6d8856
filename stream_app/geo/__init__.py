"""Location at the edge: CDN headers, the client IP, offline IP databases, country names."""

from stream_app.geo.country_names import country_code_of
from stream_app.geo.locate import Locator, RequestLocation, apply_location, fill_location
from stream_app.geo.location import Location

__all__ = [
    "Location",
    "Locator",
    "RequestLocation",
    "apply_location",
    "country_code_of",
    "fill_location",
]
