import pytest

import bayesmages as bm
from bayesmages.errors import InputError
from bayesmages.model import BayesianModel
from bayesmages.registry import _REGISTRY, register_model


def test_list_models_contains_glm_gaussian():
    assert "glm_gaussian" in bm.list_models()
    assert bm.list_models() == sorted(bm.list_models())


def test_get_model_unknown_name_lists_available():
    with pytest.raises(bm.errors.InputError) as info:
        bm.get_model("nope")
    assert isinstance(info.value, ValueError)
    assert "glm_gaussian" in str(info.value) and "'nope'" in str(info.value)


def test_get_model_passes_kwargs():
    m = bm.get_model("glm_gaussian", fit_intercept=False)
    assert m.get_params()["fit_intercept"] is False


def test_register_model_decorator_and_duplicates():
    @register_model("_test_dummy_model")
    class Dummy(BayesianModel):
        pass

    try:
        assert bm.registry.get_model_class("_test_dummy_model") is Dummy
        assert Dummy.registry_name == "_test_dummy_model"

        with pytest.raises(InputError, match="already registered"):

            @register_model("_test_dummy_model")
            class Other(BayesianModel):
                pass
    finally:
        _REGISTRY.pop("_test_dummy_model", None)


def test_register_model_rejects_bad_names():
    with pytest.raises(InputError):
        register_model("not a name")


def test_top_level_reexports():
    assert bm.get_model is bm.registry.get_model
    assert callable(bm.register_model) and callable(bm.load_model)
    assert isinstance(bm.__version__, str)
