"""CLI errors shared by the recipes that rank verified samples (v-star, math-rerank)."""

import textwrap

import pytest

from selftaught import cli


@pytest.mark.parametrize("recipe", ["v-star", "math-rerank"])
def test_cli_k_above_n_and_verifierless_task_exit_2_before_writing(recipe, tmp_path, capsys,
                                                                   monkeypatch):
    run_dir = tmp_path / "a"
    assert cli.main(["run", recipe, "--preset", "smoke", "--run-dir", str(run_dir),
                     "--candidates", "8", "--claim-k", "16"]) == 2
    assert "claim_k (16) must be <= candidates (8)" in capsys.readouterr().err
    assert not run_dir.exists()
    module = "noverify_" + recipe.replace("-", "_")  # one module per recipe: imports cache
    (tmp_path / f"{module}.py").write_text(textwrap.dedent('''
        from selftaught.tasks import ChainTask

        class NoVerifier(ChainTask):
            verify = None
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["run", recipe, "--preset", "smoke", "--run-dir", str(run_dir),
                     "--task", f"{module}:NoVerifier"]) == 2
    err = capsys.readouterr().err
    assert "verify" in err and "Traceback" not in err
    assert not run_dir.exists()
