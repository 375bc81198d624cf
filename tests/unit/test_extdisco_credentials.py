"""coturn's shared-secret (TURN REST) credentials, against a vector computed with openssl:
printf %s "1700000000:alice" | openssl dgst -sha1 -hmac "coturn-shared-secret" -binary | base64"""

from sakari.modules.extdisco import pseudonym, turn_credentials


def test_turn_credentials_match_the_rest_scheme_coturn_checks():
    assert turn_credentials("coturn-shared-secret", "alice", 1700000000) == (
        "1700000000:alice", "eaPAufPBtzKyTlFFj8/AobPZBvg=",
    )


def test_the_turn_name_of_an_account_is_stable_and_does_not_show_the_address():
    name = pseudonym("secret", "alice@example.org")
    assert name == pseudonym("secret", "alice@example.org")
    assert name != pseudonym("secret", "bob@example.org") and name != pseudonym("other", "alice@example.org")
    assert "alice" not in name and ":" not in name
