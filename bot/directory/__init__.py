"""Group membership from the company directory, behind the core's Directory port.

``groups.yaml`` keeps literal e-mail lists and may also name groups that live elsewhere:
a Slack user group, a Microsoft Entra ID group, or a group pushed by SCIM provisioning.
Each kind is a ``GroupSource``; ``sync`` fetches them in the background, fails closed
when one cannot be read, and swaps the merged groups into the running assistant.
"""
