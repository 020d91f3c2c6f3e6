"""The console's single sign-on with Microsoft Entra ID: who may sign in, and as what.

`[console] oidc_tenant` names the only tenant whose accounts are accepted (an account of another
tenant is refused with a page that says so). A signed-in account's role comes from its app
roles on the console's app registration (`operator_role`, `viewer_role`, `Console.Operator` /
`Console.Viewer` by default) or from the `operators` / `viewers` lists (user names or object
ids); an account with neither is refused. The OpenID Connect exchange itself is
`cosell.partnercenter.oidc` (Entra ID is the identity platform both use).
"""

from __future__ import annotations

from dataclasses import dataclass

from cosell.partnercenter.oidc import EntraSignIn, EntraUser
from cosell.server.console.auth import Role


@dataclass(frozen=True)
class SsoOptions:
    """Entra sign-in for the console.

    Attributes:
        sign_in: the OpenID Connect relying party of the console's app registration.
        operator_role: the app role that makes an operator.
        viewer_role: the app role that makes a viewer.
        operators: user names or object ids that are operators.
        viewers: user names or object ids that are viewers.
        redirect_url: the registered callback; None: this request's origin +
            `/console/oidc/callback`.
    """

    sign_in: EntraSignIn
    operator_role: str = "Console.Operator"
    viewer_role: str = "Console.Viewer"
    operators: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()
    redirect_url: str | None = None

    @property
    def tenant(self) -> str:
        """The tenant whose accounts may sign in."""
        return self.sign_in.app.tenant

    def role_of(self, user: EntraUser) -> Role | None:
        """The console role of a signed-in account, or None when it has none."""
        names = {user.username.lower(), user.object_id.lower()}
        if self.operator_role in user.roles or names & {n.lower() for n in self.operators}:
            return Role.OPERATOR
        if self.viewer_role in user.roles or names & {n.lower() for n in self.viewers}:
            return Role.VIEWER
        return None
