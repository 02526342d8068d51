"""Requests FastAPI cannot validate (a missing or invalid form field) answer 422 in the API's problem format, one
sentence naming the field and what to send, and the OpenAPI schema documents every 422 that way."""

from __future__ import annotations

import pytest

from service.api.app import validation_problem

from .kit import bearer, enroll


@pytest.fixture
def token(db) -> str:
    (t,) = enroll(db, 1)
    return t


def post(client, token, **kwargs):
    return client.post("/api/submissions", headers=bearer(token), **kwargs)


def test_a_missing_file_says_which_field_and_what_to_send(client, token):
    r = post(client, token, data={"assignment": "init-reg"})
    assert r.status_code == 422
    assert r.json() == {"detail": "The form field 'file' is missing: send your solution, one .py file, as the "
                                  "multipart form field `file`."}  # fmt: skip


def test_a_missing_assignment_says_which_field_and_what_to_send(client, token):
    r = post(client, token, files={"file": ("lab.py", b"x = 1\n")})
    assert r.status_code == 422
    assert r.json() == {"detail": "The form field 'assignment' is missing: send the assignment id (e.g. init-reg) "
                                  "as the form field `assignment`."}  # fmt: skip


def test_no_form_at_all_names_both_fields(client, token):
    r = post(client, token, json={"file": "x = 1"})
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "The form fields 'file' and 'assignment' are missing: send your solution, one .py file, as the multipart "
        "form field `file` and the assignment id (e.g. init-reg) as the form field `assignment`."
    )


def test_an_invalid_field_is_named_with_the_rule(client, token):
    r = post(client, token, files={"file": ("lab.py", b"x = 1\n")}, data={"assignment": "a" * 65})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("The form field 'assignment' is invalid (string should have at most 64 characters)")
    assert "aaaa" not in detail  # the value sent is not echoed


def test_other_validation_errors_keep_the_format():
    assert validation_problem([]) == "The request is invalid: check it against the API's schema at /docs."
    assert validation_problem(
        [{"loc": ("query", "limit"), "type": "int_parsing", "msg": "Input should be a valid integer"}]
    ) == (  # fmt: skip
        "The query parameter 'limit' is invalid (input should be a valid integer)."
    )
    assert validation_problem([{"loc": ("header", "x-token"), "type": "missing", "msg": "Field required"}]) == (
        "The header 'x-token' is missing: send the header."
    )


def test_every_documented_422_is_a_problem(client):
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in str(schema) and "ValidationError" not in schema["components"]["schemas"]
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    answers = [op["responses"]["422"] for ops in schema["paths"].values() for op in ops.values()
               if "422" in op["responses"]]  # fmt: skip
    assert len(answers) >= 5
    for answer in answers:
        assert answer["content"] == problem and answer["description"]
