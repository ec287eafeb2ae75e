import pytest
from rest_framework.test import APIClient

from accounts.models import Role

from .factories import CompanyFactory, UserFactory


@pytest.fixture
def company(db):
    return CompanyFactory(name="Acme")


@pytest.fixture
def other_company(db):
    return CompanyFactory(name="Globex")


@pytest.fixture
def admin_user(company):
    return UserFactory(company=company, role=Role.ADMIN, username="alice")


@pytest.fixture
def agent_user(company):
    return UserFactory(company=company, role=Role.AGENT, username="bob")


@pytest.fixture
def api_for():
    """api_for(user) -> an APIClient authenticated as that user (session auth)."""

    def make(user):
        client = APIClient()
        client.force_authenticate(user=user)
        return client

    return make


@pytest.fixture
def admin_api(api_for, admin_user):
    return api_for(admin_user)
