from rest_framework.parsers import JSONParser


class FormEncodedJSONParser(JSONParser):
    """Reads JSON sent with curl's default `-d` content type.

    `curl -d '{"text": "..."}'` labels the body application/x-www-form-urlencoded;
    the API only speaks JSON, so such a body is parsed as JSON (and is a 400 if it is not).
    """

    media_type = "application/x-www-form-urlencoded"
