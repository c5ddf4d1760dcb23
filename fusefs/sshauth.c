/*
 * sshauth.c: authenticating a libssh2 session (sshtransport.h): the agent, the
 * identity files, and, while a person is there to answer, passphrases,
 * keyboard-interactive and password prompts on the terminal, with the terminal's
 * signals caught so that Ctrl-C or Ctrl-Z during a prompt restores the echo.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <libssh2.h>
#include <openssl/evp.h>

#include "clock.h"
#include "sshtransport.h"

/* ---------------------------------------------------------------- prompts */

/*
 * The signals tty_prompt catches: those that end the program (Ctrl-C, a hangup,
 * kill, Ctrl-\) and those that stop the job (Ctrl-Z, a background job using the
 * terminal). prompt_caught[i] is set when prompt_sigs[i] arrived.
 */
static const int prompt_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU};
enum { PROMPT_NSIGS = sizeof(prompt_sigs) / sizeof(prompt_sigs[0]) };
static volatile sig_atomic_t prompt_caught[PROMPT_NSIGS];

static void prompt_on_signal(int sig)
{
	for (size_t i = 0; i < PROMPT_NSIGS; i++)
		if (prompt_sigs[i] == sig)
			prompt_caught[i] = 1;
}

static int prompt_caught_any(void)
{
	for (size_t i = 0; i < PROMPT_NSIGS; i++)
		if (prompt_caught[i])
			return 1;
	return 0;
}

/*
 * Reads one line from the terminal into buf (truncated to len - 1 bytes); returns 0,
 * or -1 at end of input, on an error, or when one of the signals in `caught` has
 * arrived (prompt_caught says which). No signal is missed between the check and the
 * wait: they are blocked for the check, and ppoll() unblocks them atomically while
 * it waits. read() follows POLLIN only (in ICANON mode: a whole line is there), so it
 * does not block either; it runs with the signals unblocked, for a background job's
 * SIGTTIN to be caught rather than turned into EIO.
 */
static int prompt_read(int fd, const sigset_t *caught, char *buf, size_t len)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t n = 0;
	int rc = -1;
	for (;;) {
		sigset_t orig;
		pthread_sigmask(SIG_BLOCK, caught, &orig);
		if (prompt_caught_any()) {
			pthread_sigmask(SIG_SETMASK, &orig, NULL);
			break;
		}
		int ready = ppoll(&pfd, 1, NULL, &orig);
		pthread_sigmask(SIG_SETMASK, &orig, NULL);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0 || !(pfd.revents & POLLIN))
			break; /* POLLHUP, POLLERR: the terminal is gone */
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		if (ch == '\n' || ch == '\r') {
			rc = 0;
			break;
		}
		if (n + 1 < len)
			buf[n++] = ch;
	}
	buf[n] = '\0';
	return rc;
}

/*
 * Asks on the terminal; returns 0 with the answer in buf, or -1 (no terminal, end
 * of input). Only called during connect, before the daemon has other threads.
 * Signals, as OpenBSD's readpassphrase(3) treats them:
 *  - SIGINT, SIGTERM, SIGHUP, SIGQUIT are caught while the prompt is up; the
 *    terminal's modes and the old handlers are put back, and the signal is raised
 *    again, so it acts as it would have (usually: the program ends) and the shell
 *    never gets back a terminal that does not echo;
 *  - SIGTSTP, SIGTTIN, SIGTTOU (Ctrl-Z; a prompt in a background job) the same way,
 *    so the job stops with the terminal echoing; when it is continued, the prompt
 *    starts over and what was typed before is discarded;
 *  - a signal whose disposition is SIG_IGN (SIGHUP under nohup) gets no handler: it
 *    stays ignored and does not end the prompt.
 */
static int tty_prompt(const char *prompt, int echo, char *buf, size_t len)
{
	struct sigaction sa, saved[PROMPT_NSIGS];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = prompt_on_signal; /* no SA_RESTART: a wait returns EINTR */
	sigemptyset(&sa.sa_mask);
	int rc, again;
	do {
		int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		sigset_t caught, orig;
		sigemptyset(&caught);
		for (size_t i = 0; i < PROMPT_NSIGS; i++) {
			prompt_caught[i] = 0;
			sigaction(prompt_sigs[i], NULL, &saved[i]);
			if (!(saved[i].sa_flags & SA_SIGINFO) && saved[i].sa_handler == SIG_IGN)
				continue;
			sigaddset(&caught, prompt_sigs[i]);
			sigaction(prompt_sigs[i], &sa, NULL);
		}
		struct termios old, quiet;
		int restore = 0;
		if (!echo && tcgetattr(fd, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
			quiet.c_lflag |= ICANON;
			/* in a background job: SIGTTOU, caught, and EINTR here */
			restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
		}
		if (!prompt_caught_any())
			(void)!write(fd, prompt, strlen(prompt));
		rc = prompt_read(fd, &caught, buf, len);
		/* blocked from here on: SIGTTOU cannot keep the modes from going back */
		pthread_sigmask(SIG_BLOCK, &caught, &orig);
		if (restore) {
			tcsetattr(fd, TCSAFLUSH, &old);
			(void)!write(fd, "\n", 1);
		}
		close(fd);
		again = 0;
		for (size_t i = 0; i < PROMPT_NSIGS; i++) {
			if (!sigismember(&caught, prompt_sigs[i]))
				continue;
			sigaction(prompt_sigs[i], &saved[i], NULL);
			if (prompt_caught[i]) {
				raise(prompt_sigs[i]); /* pending until the mask goes back */
				again |= prompt_sigs[i] == SIGTSTP || prompt_sigs[i] == SIGTTIN ||
				         prompt_sigs[i] == SIGTTOU;
			}
		}
		if (rc || again)
			explicit_bzero(buf, len);
		/* what was raised acts here: the program ends, or the job stops until SIGCONT */
		pthread_sigmask(SIG_SETMASK, &orig, NULL);
	} while (again);
	return rc;
}

/* Nonzero when there is a terminal to prompt on (what tty_prompt opens). */
static int have_tty(void)
{
	int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static LIBSSH2_USERAUTH_KBDINT_RESPONSE_FUNC(kbd_callback)
{
	struct ssh_transport *t = *abstract;
	int fd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		if (name_len > 0) {
			(void)!write(fd, name, (size_t)name_len);
			(void)!write(fd, "\n", 1);
		}
		if (instruction_len > 0) {
			(void)!write(fd, instruction, (size_t)instruction_len);
			(void)!write(fd, "\n", 1);
		}
		close(fd);
	}
	for (int i = 0; i < num_prompts; i++) {
		char prompt[512], answer[512];
		snprintf(prompt, sizeof(prompt), "%.*s", (int)prompts[i].length,
		         (const char *)prompts[i].text);
		responses[i].text = NULL;
		responses[i].length = 0;
		if (!t->interactive || tty_prompt(prompt, prompts[i].echo, answer, sizeof(answer)))
			continue;
		t->prompted++;
		responses[i].text = strdup(answer);
		responses[i].length = responses[i].text ? (unsigned int)strlen(answer) : 0;
		explicit_bzero(answer, sizeof(answer));
	}
}

/* ---------------------------------------------------------------- authentication */

/* Nonzero when the private key file is protected by a passphrase. */
static int key_is_encrypted(const char *path)
{
	char head[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, head, sizeof(head) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	head[n] = '\0';
	if (strstr(head, "ENCRYPTED"))
		return 1; /* PEM: Proc-Type: 4,ENCRYPTED or BEGIN ENCRYPTED PRIVATE KEY */
	const char *begin = strstr(head, "-----BEGIN OPENSSH PRIVATE KEY-----");
	if (!begin)
		return 0;
	/* openssh-key-v1\0, then string ciphername: base64 of the first lines */
	const char *p = strchr(begin, '\n');
	if (!p)
		return 0;
	char b64[256];
	size_t bl = 0;
	for (p++; *p && bl < 128; p++)
		if (*p != '\n' && *p != '\r')
			b64[bl++] = *p;
	bl -= bl % 4;
	b64[bl] = '\0';
	unsigned char raw[200];
	int rl = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)bl);
	if (rl < 15 + 4 || memcmp(raw, "openssh-key-v1", 15) != 0)
		return 0;
	uint32_t cl =
	    (uint32_t)raw[15] << 24 | (uint32_t)raw[16] << 16 | (uint32_t)raw[17] << 8 | raw[18];
	if (cl > (uint32_t)rl - 19)
		return 0;
	return !(cl == 4 && memcmp(raw + 19, "none", 4) == 0);
}

static void tried_add(char *tried, size_t len, const char *what)
{
	size_t l = strlen(tried);
	snprintf(tried + l, len - l, "%s%s", l ? ", " : "", what);
}

int fsd_ssh_authenticate(struct ssh_transport *t, struct ssh_connector *c, char *err,
                         size_t errlen)
{
	LIBSSH2_SESSION *s = t->session;
	const char *user = c->user;
	unsigned ulen = (unsigned)strlen(user);
	char tried[1024] = "";
	char unreadable[1024] = ""; /* identity files given but not readable */
	int no_person = 0; /* succeeded without a person (agent or plain key) */

	/* one round trip, the "none" attempt (sshio.c, invariant 4): an RTT estimate */
	int64_t t0 = fsd_now_us();
	char *list = libssh2_userauth_list(s, user, ulen);
	t->rtt_s = (double)(fsd_now_us() - t0) / 1e6;
	if (!list) {
		if (libssh2_userauth_authenticated(s))
			goto ok;
		snprintf(err, errlen, "cannot authenticate to %s: %s", t->peer, fsd_ssh_errmsg(s));
		return -EACCES;
	}
	char methods[256];
	snprintf(methods, sizeof(methods), "%s", list);

	if (strstr(methods, "publickey")) {
		const char *sock = getenv("SSH_AUTH_SOCK");
		LIBSSH2_AGENT *agent = sock && *sock ? libssh2_agent_init(s) : NULL;
		if (agent && libssh2_agent_connect(agent) == 0) {
			tried_add(tried, sizeof(tried), "ssh-agent");
			if (libssh2_agent_list_identities(agent) == 0) {
				struct libssh2_agent_publickey *id = NULL, *prev = NULL;
				while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
					if (libssh2_agent_userauth(agent, user, id) == 0) {
						libssh2_agent_disconnect(agent);
						libssh2_agent_free(agent);
						no_person = 1;
						goto ok;
					}
					prev = id;
				}
			}
			libssh2_agent_disconnect(agent);
		}
		if (agent)
			libssh2_agent_free(agent);

		for (size_t i = 0; i < c->n_identity_files; i++) {
			const char *f = c->identity_files[i];
			if (access(f, R_OK) != 0) {
				size_t l = strlen(unreadable);
				if (i < c->n_given_identity_files)
					snprintf(unreadable + l, sizeof(unreadable) - l,
					         "; cannot read identity file '%s': %s", f,
					         strerror(errno));
				continue;
			}
			tried_add(tried, sizeof(tried), f);
			if (!key_is_encrypted(f)) {
				if (libssh2_userauth_publickey_fromfile_ex(s, user, ulen, NULL, f,
				                                           NULL) == 0) {
					no_person = 1;
					goto ok;
				}
				continue;
			}
			int asked = 0;
			for (int attempt = 0; t->interactive && attempt < 3; attempt++) {
				char prompt[600], pass[512];
				snprintf(prompt, sizeof(prompt),
				         "Enter passphrase for key '%s': ", f);
				if (tty_prompt(prompt, 0, pass, sizeof(pass)))
					break;
				t->prompted++;
				asked = 1;
				int rc = libssh2_userauth_publickey_fromfile_ex(s, user, ulen, NULL,
				                                                f, pass);
				explicit_bzero(pass, sizeof(pass));
				if (rc == 0)
					goto ok;
				if (rc != LIBSSH2_ERROR_FILE)
					break; /* decrypted, but the server refused the key */
			}
			if (!asked) {
				size_t l = strlen(tried);
				snprintf(tried + l, sizeof(tried) - l,
				         " (needs a passphrase, and no terminal to ask)");
			}
		}
	}
	/*
	 * A key can be only the first of several factors (sshd's AuthenticationMethods
	 * "publickey,keyboard-interactive"): after that partial success the server
	 * accepts methods it did not list at first. Ask again.
	 */
	if (tried[0]) {
		list = libssh2_userauth_list(s, user, ulen);
		if (!list && libssh2_userauth_authenticated(s))
			goto ok;
		if (list)
			snprintf(methods, sizeof(methods), "%s", list);
	}
	int kbd = strstr(methods, "keyboard-interactive") != NULL;
	int password = strstr(methods, "password") != NULL;
	char no_tty[160] = "";
	if ((kbd || password) && !(t->interactive && have_tty())) {
		/* an empty answer would only count as a failed login on the server */
		snprintf(no_tty, sizeof(no_tty), "; %s a terminal to ask on, and there is none",
		         !password ? "keyboard-interactive needs"
		         : !kbd    ? "password needs"
		                   : "keyboard-interactive and password need");
		kbd = password = 0;
	}
	if (kbd) {
		tried_add(tried, sizeof(tried), "keyboard-interactive");
		for (int attempt = 0; attempt < 3; attempt++) {
			int before = t->prompted;
			if (libssh2_userauth_keyboard_interactive_ex(s, user, ulen, kbd_callback) ==
			    0)
				goto ok;
			if (before == t->prompted)
				break; /* nobody answered: asking again would not help */
		}
	}
	if (password) {
		tried_add(tried, sizeof(tried), "password");
		for (int attempt = 0; attempt < 3; attempt++) {
			char prompt[400], pass[512];
			snprintf(prompt, sizeof(prompt), "%s@%s's password: ", user, c->host);
			if (tty_prompt(prompt, 0, pass, sizeof(pass)))
				break;
			t->prompted++;
			int rc = libssh2_userauth_password_ex(s, user, ulen, pass,
			                                      (unsigned)strlen(pass), NULL);
			explicit_bzero(pass, sizeof(pass));
			if (rc == 0)
				goto ok;
		}
	}
	snprintf(err, errlen, "permission denied for %s@%s: tried %s%s%s (the server accepts %s)",
	         user, c->host,
	         tried[0]                   ? tried
	         : no_tty[0] || unreadable[0] ? "nothing"
	                                      : "nothing (no key, no agent, no terminal)",
	         unreadable, no_tty, methods);
	return -EACCES;
ok:
	c->reconnect_ok = no_person && !t->prompted;
	return 0;
}
