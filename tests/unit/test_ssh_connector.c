/*
 * test_ssh_connector.c: unit tests of fusefs/ssh.c's connector without a network:
 * bad sources are refused with a message that says how to write one (IPv6
 * addresses in brackets), and making a connector neither connects nor claims it
 * may reconnect before anyone authenticated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ssh.h"
#include "check.h"

static void test_connector_sources(void)
{
	struct fsd_ssh_options o;
	char err[512];
	fsd_ssh_options_init(&o);
	fsd_ssh_opt(&o, "ssh_config", "none");
	const char *bad[] = {"@host:x", "user@:x", "[::1:x", "[::1]x:y", "u@[::1]x:y", "[]:x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		struct fsd_connector *c = fsd_ssh_connector_new(bad[i], &o, 0, err, sizeof(err));
		CHECK(c == NULL);
		CHECK(strstr(err, "bad remote source") != NULL);
		CHECK(strstr(err, "[user@][::1]:[path]") != NULL); /* says how to write IPv6 */
		if (c)
			c->free(c);
	}
	/* making a connector does not connect */
	struct fsd_connector *c = fsd_ssh_connector_new("u@[::1]:cache", &o, 1, err, sizeof(err));
	CHECK(c != NULL);
	if (c) {
		CHECK(c->can_reconnect(c) == 0); /* nobody authenticated yet */
		c->free(c);
	}
	fsd_ssh_opt(&o, "ssh_command", "ssh -J jump host");
	c = fsd_ssh_connector_new("h:cache", &o, 0, err, sizeof(err));
	CHECK(c != NULL && c->can_reconnect(c));
	if (c)
		c->free(c);
	fsd_ssh_options_release(&o);
}

int main(void)
{
	test_connector_sources();
	return check_report("test_ssh_connector");
}
