# SPDX-License-Identifier: Apache-2.0
"""Plain HTTP: GET /plain answers "plain"; any other path answers JSON of the request."""


from django.http import HttpResponse, JsonResponse
from django.urls import re_path


def plain(request):
    return HttpResponse(b"plain", content_type="text/plain")


def describe(request):
    headers = {k.lower(): v for k, v in request.headers.items()}
    return JsonResponse({"method": request.method, "url": request.get_full_path(),
                         "headers": headers})


urlpatterns = [
    re_path(r"^plain$", plain),
    re_path(r"", describe),
]
