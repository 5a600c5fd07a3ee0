"""`bakeoff serve --check`: validates a config without serving."""
import json

from conftest import UPSTREAM_KEY_ENV, gateway_env, run_bakeoff, split_experiment


def write(tmp_path, config, name="gateway.json"):
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else json.dumps(config, indent=2))
    return path


def good_config(tmp_path):
    return {
        "listen": "127.0.0.1:8080",
        "store": {"path": str(tmp_path / "store.db")},
        "experiments": [split_experiment("check-exp", "check-bot", "http://127.0.0.1:9001/v1", "http://127.0.0.1:9002/v1",
                                         treatment_upstream={"api_key_env": UPSTREAM_KEY_ENV})],
    }


def check(path):
    return run_bakeoff("serve", "--check", "--config", str(path), check=False, env=gateway_env())


def test_check_accepts_a_good_config(tmp_path):
    r = check(write(tmp_path, good_config(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout
    assert "check-bot" in r.stdout
    assert "sk-upstream" not in r.stdout + r.stderr  # keys are never printed
    assert not (tmp_path / "store.db").exists()  # --check does not open the store


def test_check_accepts_the_example_config_as_shipped(tmp_path):
    """An example passes as shipped, in a bare environment: no key variable, no admin key set."""
    import os
    from conftest import REPO
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAKEOFF_", "SUPPORT_"))}
    r = run_bakeoff("serve", "--check", "--config", str(REPO / "examples" / "gateway.json"), check=False, env=env)
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout


def test_check_reports_every_problem_with_its_path(tmp_path):
    config = good_config(tmp_path)
    config["thread"] = 2                                   # typo of "threads"
    config["listen"] = "a"
    config["experiments"][0]["split"] = 1.5
    config["experiments"][0]["variants"][1]["upstream"]["headers"] = {"Authorization": "Bearer x"}
    r = check(write(tmp_path, config))
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "thread" in out and "threads" in out, out
    assert "listen" in out, out
    assert "experiments[0].split" in out, out
    assert "experiments[0].variants[1].upstream.headers" in out, out


def test_check_weights_not_summing_to_one(tmp_path):
    config = good_config(tmp_path)
    exp = config["experiments"][0]
    del exp["split"]
    exp["variants"][0]["weight"] = 0.4
    exp["variants"][1]["weight"] = 0.4
    r = check(write(tmp_path, config))
    assert r.returncode != 0
    assert "experiments[0].variants" in r.stdout + r.stderr, r.stderr


def test_check_missing_api_key_variable(tmp_path):
    config = good_config(tmp_path)
    env = gateway_env()
    del env[UPSTREAM_KEY_ENV]
    r = run_bakeoff("serve", "--check", "--config", str(write(tmp_path, config)), check=False, env=env)
    assert r.returncode != 0
    assert "experiments[0].variants[1].upstream.api_key_env" in r.stdout + r.stderr, r.stderr


def test_check_json_syntax_error(tmp_path):
    path = write(tmp_path, '{\n  "listen": "127.0.0.1:8080",\n  "experiments": [\n')
    r = check(path)
    assert r.returncode != 0
    assert str(path.name) in r.stderr, r.stderr
    assert "line" in r.stderr.lower() or ":3" in r.stderr or ":4" in r.stderr, r.stderr


def test_serve_refuses_a_bad_config(tmp_path):
    config = good_config(tmp_path)
    config["experiments"] = []
    r = run_bakeoff("serve", "--config", str(write(tmp_path, config)), "--listen", "127.0.0.1:0", check=False,
                    env=gateway_env(), timeout=60)
    assert r.returncode != 0
    assert "experiments" in r.stderr, r.stderr


def test_check_refuses_a_store_folder_that_does_not_exist(tmp_path):
    """`--check` says what serving would fail on at once: a store in a missing folder (it said "valid")."""
    config = good_config(tmp_path)
    config["store"]["path"] = str(tmp_path / "missing" / "store.db")
    r = check(write(tmp_path, config))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "the folder" in r.stderr and "does not exist" in r.stderr, r.stderr
    assert not (tmp_path / "missing").exists()


def test_check_refuses_a_negative_grace(tmp_path):
    r = run_bakeoff("serve", "--check", "--config", str(write(tmp_path, good_config(tmp_path))), "--grace", "-1",
                    check=False, env=gateway_env())
    assert r.returncode == 2, r.stderr
    assert "--grace" in r.stderr, r.stderr
