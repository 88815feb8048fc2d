package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/bcrypt"
)

// maxPasswordBytes is bcrypt's limit: it ignores what is longer.
const maxPasswordBytes = 72

func (a *app) passwdCmd() *cobra.Command {
	var cost int
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Hash a password for [[nats.users]] (bcrypt)",
		Long: `Passwd reads a password from the first line of standard input and prints its
bcrypt hash, to put in a [[nats.users]] table of a node's configuration as
password = "$2a$...". It connects to nothing.`,
		Example: `  printf '%s\n' 'a long random secret' | corralctl passwd`,
		Args:    argNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 4096)).ReadString('\n')
			if err != nil && err != io.EOF {
				return fmt.Errorf("cannot read the password: %w", err)
			}
			password := strings.TrimRight(line, "\r\n")
			switch {
			case password == "":
				return usage(cmd, "no password on standard input")
			case len(password) > maxPasswordBytes:
				return usage(cmd, "the password is %d bytes long; bcrypt uses at most %d", len(password), maxPasswordBytes)
			}
			hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
			if err != nil {
				return usage(cmd, "cannot hash the password: %v", err)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(hash))
			return err
		},
	}
	cmd.Flags().IntVar(&cost, "cost", 11, "bcrypt cost (4 to 31)")
	return cmd
}
